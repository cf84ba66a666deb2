"""The worker process that runs ``core`` (TensorFlow) jobs away from the GUI process."""
