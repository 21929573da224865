"""Reference world models of wmbench: small networks trained on the built-in Meta-World data.

`nets` holds the networks, `training` the training loop and checkpoint files, `adapters` the
wmbench adapters (`reference-idp`, `reference-fdp`). The pipeline that trains all of them
(`wmbench reference train`) is wmbench.run.reference; docs/paper-in-miniature.md shows what they do.
"""
