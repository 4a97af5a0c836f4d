"""The edge: where the outside world calls in.

kopf handlers and the operator's main, the command line (``modelmonitor run | check |
baseline | job``), settings from flags and environment variables, and logging. Nothing
below this layer reads an environment variable or a command-line flag.
"""
