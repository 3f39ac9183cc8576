"""The console's library: everything the pages call. Never imports streamlit."""
