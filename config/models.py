"""No models: the module exists so that ``migrate`` signals reach this app (apps.py)."""
