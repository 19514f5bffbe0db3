"""Images: names, the OCI image layout store, and the built-in busybox image.

Chapter 01 needs just enough of this to run something: the built-in `busybox:latest`, stored as
an OCI image layout from the start, unpacked once into a cached directory. Chapter 05 adds
layers, overlayfs, whiteouts, import/export and the rest.
"""
