-- One row per product, with a non-negative price.
select
    cast(product_id as integer) as product_id,
    trim(name) as name,
    lower(trim(category)) as category,
    cast(price as numeric(10, 2)) as price
from {{ source('bronze', 'products') }}
where product_id is not null
  and price >= 0
