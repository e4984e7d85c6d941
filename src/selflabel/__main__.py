from selflabel.cli import main

main()
