"""nbgrader loads this file from the folder it is started in (nbgrader 0.9 ignores --config).

It only loads course_config.py, so that formgrader (JupyterLab started in this
folder) and `nbgrader …` commands run here use the kit's configuration.
"""
c = get_config()  # noqa: F821 (given by traitlets when it loads this file)
load_subconfig("course_config.py")  # noqa: F821
