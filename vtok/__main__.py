from vtok.cli import main

main()
