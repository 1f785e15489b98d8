"""Switchable parts of the network, one idea per file; "off" is a parameter-free module."""
