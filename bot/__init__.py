"""The running program: configuration, assembly, CLI, scheduler, i18n, web and channels."""
