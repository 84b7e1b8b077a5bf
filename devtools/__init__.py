"""Tools for developers and the test run: throwaway servers and demo data. Not shipped."""
