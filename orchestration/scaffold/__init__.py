"""The scaffolder behind `manage.py generate`.

``generators`` plans a service or one more operation as a ``project.Plan``:
every file change, checked for clashes before anything is written
(``Plan.describe`` is the dry run, ``Plan.write`` applies it). ``sources``
edits existing modules through ``ast``; ``names`` checks the names a user gives.
"""
