"""The web UI (Gradio): one module per tab or concern; `app.ui.web_app.build_web_app` puts them together.

Nothing is imported here, so that importing one module (say `app.ui.render`) does not build the whole app.
"""
