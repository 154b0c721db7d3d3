"""Built-in landmark specs (YAML). Installed as facegen.landmark_specs."""
