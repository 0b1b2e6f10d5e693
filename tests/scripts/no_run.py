"""A script that never calls twister2.run."""

print("nothing to run")
