"""magicgui dock widgets (Plugins menu). Importing them never imports TensorFlow."""
