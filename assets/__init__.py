"""Small shipped assets: sampling configs, material presets. Installed as facegen.assets."""
