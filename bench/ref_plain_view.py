"""The plain reference (bench/ref_plain.py) behind a two-way radio, so bench/ui_bench.py can
time "click, then every chart drawn" on it exactly as on the wizard's Results step."""

import runpy
from pathlib import Path

import streamlit as st

view = st.radio("view", ["inputs", "charts"], key="view", horizontal=True)
if view == "charts":
    runpy.run_path(str(Path(__file__).with_name("ref_plain.py")))
else:
    st.number_input("something to change", key="m", value=1)
