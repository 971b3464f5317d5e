"""poolwise web app: `streamlit run app.py`. Page setup only; the wizard lives in wizard/ui."""

import streamlit as st

st.set_page_config(page_title="poolwise: SQLAlchemy pool sizing", page_icon=":material/database:",
                   layout="wide")

from wizard.ui.page import main  # noqa: E402  (set_page_config must come first)

main()
