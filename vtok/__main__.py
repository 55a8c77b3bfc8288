from vtok.cli.commands import main

main()
