from resnet_probe.cli import main

main()
