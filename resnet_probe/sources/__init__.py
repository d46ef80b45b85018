"""Where a MODEL comes from, resolved once at the edge (CLI and top-level API).

Accepted everywhere a MODEL is:

* a zoo name or spec text: ``resnet50``, ``plain34``, ``cifar[layers=9-9-9]``;
* ``torchvision:NAME``: any torchvision classification model (``torchvision.models.get_model``);
* ``timm:NAME``: any timm model (``timm.create_model``);
* ``path/to/file.py:factory`` or ``package.module:factory``: a user's function returning an
  ``nn.Module`` (or an ``nn.Module`` subclass), defined in that file or module: a library's
  callable (``os:system``, ``builtins:exec``) is never called, and builder arguments must bind
  to the factory's signature before it is called;
* any of these three with builder arguments: ``torchvision:vit_h_14[image_size=518]``,
  ``timm:resnet50d[drop_rate=0.1]``, ``my_model.py:build[width=32]``;
* ``plain:MODEL``: the plain twin of any of the above, made by graph surgery (surgery/);
  ``plain[reinit]:MODEL`` first gives branches that start at zero a unit init;
  ``plain[partial]:MODEL`` keeps a twin that cannot be made plain (a shortcut it cannot
  remove), labelled partial, where ``plain:`` refuses it (options combine: plain[reinit,partial]);
* in the API, an ``nn.Module`` itself.

Models are built with random initialisation; nothing is downloaded. Foreign models (all but the
zoo's) get their block and stage structure discovered from their graph, as ``layer_info``, when
a measurement needs it. A user's code (importing its module, building, its forward) runs inside
``user_code``: what it writes to stdout (print, ``sys.__stdout__``, file descriptor 1) goes to
stderr, a call to ``os._exit`` is refused, and an exception, ``sys.exit`` or any other
BaseException but Ctrl-C becomes an error naming the source and the step it reached.

A MODEL text read from a file (a baseline, a checkpoint, a run folder) goes through
``sources.recorded.resolve_recorded`` instead: there a file or module source runs only with an
explicit trust flag.

One concept per module:

* ``source``: ``ModelSource`` (the resolved MODEL: builds it, its traits, its identity),
  ``SourceKind``, ``Traits``, and ``forward_step``;
* ``resolving``: MODEL text or module -> ModelSource, with close names for an unknown one;
* ``grammar``: how a MODEL is written (prefixes, ``plain[...]:``, builder arguments);
* ``foreign``: constructing torchvision and timm models and a user's factory;
* ``user_code`` and ``containment``: running a user's code so that it fails by name;
* ``weights``: a ``--weights`` state_dict, loaded as data and checked against the model;
* ``errors``: ``SourceError`` and ``WeightsMismatch``;
* ``inputs``: what a forward takes when it is more than one image (``InputSpec``);
* ``recorded``: MODEL text read from a file, resolved as data;
* ``surgery/``: structure discovery, plain twins and lesions by graph surgery.
"""

from resnet_probe.sources.errors import SourceError, WeightsMismatch
from resnet_probe.sources.inputs import InputSpec
from resnet_probe.sources.resolving import resolve
from resnet_probe.sources.source import ModelSource, SourceKind, Traits, forward_step
from resnet_probe.sources.user_code import user_code
from resnet_probe.sources.weights import check_weights, load_weights, read_weights

__all__ = [
    "InputSpec", "ModelSource", "SourceError", "SourceKind", "Traits", "WeightsMismatch",
    "check_weights", "forward_step", "load_weights", "read_weights", "resolve", "user_code",
]
