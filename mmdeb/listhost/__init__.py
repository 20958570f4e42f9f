"""Code that mailmen-common runs on list hosts (standard library only)."""
