"""The Streamlit script: page setup, then the wizard (wizard/ui).

`poolwise app` serves this file; the checkout's app.py calls the same `run()` for `make run`
and the tests, so the page setup exists once.
"""

import streamlit as st


def run() -> None:
    """Set up the page, then draw the wizard; Streamlit calls this on every rerun."""
    st.set_page_config(page_title="poolwise: SQLAlchemy pool sizing",
                       page_icon=":material/database:", layout="wide")
    from wizard.ui.page import main  # after set_page_config, which must come first

    main()


if __name__ == "__main__":  # Streamlit runs its script as __main__
    run()
