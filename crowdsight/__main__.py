from crowdsight.cli import main

main()
