// @shopstream/client/react: useShopstream, a React hook that keeps one
// shopstream client connected for a component and turns its events into
// batched TanStack Query invalidations. Needs react and @tanstack/react-query
// (optional peer dependencies of the package; the main entry needs neither).
import { useEffect, useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { makeUseShopstream } from './react-core.js';

export { createInvalidationBatcher, createShopstreamBinding, makeUseShopstream, windowScheduler, bindingKey } from './react-core.js';

/**
 *   const { state, client } = useShopstream(['order_changes', 'product_changes'], {
 *     onLoginRequired: () => navigate('/login'),
 *   });
 */
export const useShopstream = makeUseShopstream({ useEffect, useRef, useState }, useQueryClient);
