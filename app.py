"""poolwise web app: `streamlit run app.py` (installed: `poolwise app`). Page setup and the
wizard live in wizard/web/app.py and wizard/ui."""

from wizard.web.app import run

run()
