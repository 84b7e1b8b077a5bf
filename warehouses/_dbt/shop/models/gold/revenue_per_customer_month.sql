-- Revenue per customer and calendar month of ordering; cancelled orders do not count.
with order_totals as (
    select
        order_id,
        sum(quantity) as items,
        sum(quantity * unit_price) as revenue
    from {{ ref('order_items') }}
    group by order_id
)

select
    o.customer_id,
    c.name as customer_name,
    c.country,
    cast(date_trunc('month', o.ordered_at) as date) as month,
    cast(count(*) as bigint) as orders,
    cast(coalesce(sum(t.items), 0) as bigint) as items,
    cast(coalesce(sum(t.revenue), 0) as numeric(14, 2)) as revenue
from {{ ref('orders') }} as o
inner join {{ ref('customers') }} as c on c.customer_id = o.customer_id
left join order_totals as t on t.order_id = o.order_id
where o.status <> 'cancelled'
group by o.customer_id, c.name, c.country, cast(date_trunc('month', o.ordered_at) as date)
