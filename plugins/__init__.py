"""Integrations with other systems. Each framework plugin is an optional extra and is imported
by its own module name (``plugins.langchain``, ``plugins.llamaindex``, ``plugins.haystack``);
this package imports none of them by itself."""
