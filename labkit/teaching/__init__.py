"""What the notebooks show and check: plots, widgets, exercises and notebook hygiene."""
