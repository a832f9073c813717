"""riskdesk core: all logic, importable without Streamlit.

Heavy libraries (pandas, LightGBM, SHAP, Optuna) are imported inside the functions that
need them so that `python -m core --help` stays fast.
"""
