-- Sample rows, added once (only into empty tables).
INSERT INTO public.customers (email, name, phone)
SELECT * FROM (VALUES
    ('ada@example.com', 'Ada Lovelace', '+44 20 7946 0018'),
    ('grace@example.com', 'Grace Hopper', '+1 202 555 0143'))
    AS v WHERE NOT EXISTS (SELECT 1 FROM public.customers);

INSERT INTO public.products (sku, name, price, stock)
SELECT * FROM (VALUES
    ('TEA-001', 'Assam tea, 250 g', 8.50, 120),
    ('MUG-002', 'Stoneware mug', 14.00, 40),
    ('KET-003', 'Kettle', 49.99, 12))
    AS v WHERE NOT EXISTS (SELECT 1 FROM public.products);

INSERT INTO public.orders (order_number, status, payment_status, total, customer_id)
SELECT * FROM (VALUES
    ('ORD-1000000001', 'pending', 'pending', 22.50, 1::bigint),
    ('ORD-1000000002', 'processing', 'paid', 99.99, 2::bigint))
    AS v WHERE NOT EXISTS (SELECT 1 FROM public.orders);

INSERT INTO public.shipments (order_id, carrier, tracking_number)
SELECT o.id, 'DHL', 'JD0146000011' FROM public.orders o
WHERE o.order_number = 'ORD-1000000002' AND NOT EXISTS (SELECT 1 FROM public.shipments);

INSERT INTO public.transactions (order_id, amount, status)
SELECT o.id, o.total, 'captured' FROM public.orders o
WHERE o.order_number = 'ORD-1000000002' AND NOT EXISTS (SELECT 1 FROM public.transactions);
