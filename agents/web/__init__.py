"""`ser-agent web`: the empathetic chat demo as a local web page (FastAPI + one static page).

    from agents.web import create_app          # an app over any AffectPipeline (tests inject a scripted model)
    ser-agent web [--model local] [--host 127.0.0.1] [--port 8000]

Needs the [web] extra (fastapi, uvicorn, matplotlib). Importing this package is free: FastAPI loads when
`create_app` is asked for, so `ser-agent`'s parser can declare the web flags without it.
"""

__all__ = ["CAVEAT", "NO_WORDS_NOTE", "create_app"]


def __getattr__(name: str):
    if name in __all__:
        from agents.web import app

        return getattr(app, name)
    raise AttributeError(f"module 'agents.web' has no attribute {name!r}")
