"""Providers: the sources of registry entries (torch, optforge's own optimizers, optional packages).

Each provider module has a ``register()`` function that adds its entries with
:func:`optforge.registry.register_optimizer`; the registry calls it the first
time the provider is needed, so optional packages are imported only then.
"""
