{#
    One row per order id seen in the order lines (int_order_lines_priced). Status:
      completed    at least one sale line (returns, later lines of the order, reduce
                   its net revenue);
      cancelled    only lines of a cancelled order (net revenue 0; not an order in
                   order_count);
      return_only  only return lines: the original sale was quarantined in staging, so
                   the refund still counts against revenue but the order does not.
    The order's time, customer and channel are those of its first sale or cancelled
    line, or of its first return when it has no other line.
    Defined once here: the orders mart publishes it, and the CLV inputs are built from
    it, so no intermediate model reads a mart.
#}

{#- A table; a daily load (macros/daily_loads.sql) recomputes the orders it touches. -#}
{{ config(**daily_load_config(unique_key='order_id')) }}

with

order_lines as (
    select * from {{ ref('int_order_lines_priced') }}
    {%- if is_daily_load() %}
    where order_id in {{ daily_order_ids() }}
    {%- endif %}
),

order_totals as (
    {#- One pass: the totals and, by arg_min over the placement order (a sale or
        cancelled line before a return, then time, then line number; unique per order),
        the order's first line, instead of a window over every line joined back. -#}
    select
        order_id,
        arg_min(
            { 'customer_id': customer_id, 'channel': channel, 'ordered_at': ordered_at },
            (line_type = 'return', ordered_at, line_number)
        ) as first_line,
        count(*) filter (where line_type = 'sale') as sale_line_count,
        count(*) filter (where line_type = 'return') as return_line_count,
        count(*) filter (where line_type = 'cancellation') as cancelled_line_count,
        cast(coalesce(sum(quantity) filter (where line_type = 'sale'), 0) as bigint)
            as units_sold,
        cast(coalesce(sum(quantity) filter (where line_type = 'return'), 0) as bigint)
            as units_returned,
        coalesce(sum(net_revenue) filter (where line_type = 'sale'), 0) as sales_revenue,
        coalesce(-sum(net_revenue) filter (where line_type = 'return'), 0)
            as returned_revenue,
        sum(net_revenue) as net_revenue
    from order_lines
    group by order_id
),

final as (
    select
        order_totals.order_id,
        order_totals.first_line.customer_id,
        order_totals.first_line.channel,
        order_totals.first_line.ordered_at,
        cast(order_totals.first_line.ordered_at as date) as order_date,
        order_totals.sale_line_count > 0 as is_completed,
        case
            when order_totals.sale_line_count > 0 then 'completed'
            when order_totals.cancelled_line_count > 0 then 'cancelled'
            else 'return_only'
        end as order_status,
        order_totals.sale_line_count,
        order_totals.return_line_count,
        order_totals.cancelled_line_count,
        order_totals.units_sold,
        order_totals.units_returned,
        cast(order_totals.sales_revenue as decimal(18, 4)) as sales_revenue,
        cast(order_totals.returned_revenue as decimal(18, 4)) as returned_revenue,
        cast(order_totals.net_revenue as decimal(18, 4)) as net_revenue
    from order_totals
)

select * from final
