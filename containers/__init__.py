"""The container stack on machines like this project's CI: a Docker engine started by us when none
runs, images built offline (no Docker Hub, no package index inside builds), and compose."""
