-- One row per order line; lines without a positive quantity or with a negative price are dropped.
select
    cast(order_item_id as integer) as order_item_id,
    cast(order_id as integer) as order_id,
    cast(product_id as integer) as product_id,
    cast(quantity as integer) as quantity,
    cast(unit_price as numeric(10, 2)) as unit_price
from {{ source('bronze', 'order_items') }}
where order_item_id is not null
  and order_id is not null
  and quantity > 0
  and unit_price >= 0
