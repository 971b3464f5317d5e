"""The Streamlit wizard: one module per step, `page.main()` draws the app."""
