from lamina.cli.main import entry

entry()
