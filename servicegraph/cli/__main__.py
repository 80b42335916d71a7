from servicegraph.cli.main import main

main()
