-- One row per customer: trimmed names, normalised emails and country codes.
select
    cast(customer_id as integer) as customer_id,
    trim(name) as name,
    lower(trim(email)) as email,
    upper(trim(country)) as country,
    cast(created_at as timestamp) as created_at
from {{ source('bronze', 'customers') }}
where customer_id is not null
  and email like '%@%'
