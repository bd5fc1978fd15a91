from reasoningrec.cli import main

main()
