from fastsockjs.cli import main

main()
