"""Drop-in modules for the two systems optforge grew from: change one import line, keep every config file.

* :mod:`optforge.compat.tml`: the recommender system's ``optimizers`` package
  (and its ranking project's optimizer section and builder);
* :mod:`optforge.compat.template`: the training template's ``optimizer`` and
  scheduler builders, registry and param-group helpers.
"""
