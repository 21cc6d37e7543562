"""The run's configuration: the Option table (options), YAML + command line into a checked config (parse), and the
one adapter from a parsed config to the library's keyword arguments (kwargs)."""
