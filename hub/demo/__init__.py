"""The demo: deterministic DPRK-style intelligence (:mod:`hub.demo.data`) and a working hub in one command
(:mod:`hub.demo.setup`)."""
