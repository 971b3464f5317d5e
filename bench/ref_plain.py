"""Reference for bench/ui_bench.py: the same kinds of elements drawn the plain way
(three Altair bar charts built each run with shorthand encodings, a dataframe, a code block)."""

import altair as alt
import pandas as pd
import streamlit as st

n = st.slider("n", 1, 200, 10, key="n")
df = pd.DataFrame({"endpoint": [f"e{i}" for i in range(4)] * 4,
                   "part": [p for p in ("reserved", "pools", "overflow", "headroom")
                            for _ in range(4)],
                   "connections": [n * (i + 1) for i in range(16)]})
for title in ("budget", "scale-out", "wait"):
    chart = alt.Chart(df).mark_bar().encode(x="connections:Q", y="endpoint:N", color="part:N",
                                            tooltip=["endpoint:N", "part:N", "connections:Q"])
    st.altair_chart(chart.properties(title=title), width="stretch")
st.dataframe(df, hide_index=True)
st.code(f"engine = create_async_engine(url, pool_size={n}, max_overflow={n // 2})")
