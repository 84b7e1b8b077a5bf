-- One row per order with a known status.
select
    cast(order_id as integer) as order_id,
    cast(customer_id as integer) as customer_id,
    lower(trim(status)) as status,
    cast(ordered_at as timestamp) as ordered_at,
    cast(updated_at as timestamp) as updated_at
from {{ source('bronze', 'orders') }}
where order_id is not null
  and customer_id is not null
  and lower(trim(status)) in ('placed', 'shipped', 'delivered', 'cancelled')
