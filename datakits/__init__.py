"""datakits: the extract-load engine that copies source tables into a tenant's bronze layer.

No Airflow here (runner images do not carry it); see DESIGN.md for the layering.
"""
