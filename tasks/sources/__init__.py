"""Where an image's inputs come from: set tarballs, a directory tree, an existing
image, downloads and their URLs; a tree's fingerprint and the inputs record of an
image."""
