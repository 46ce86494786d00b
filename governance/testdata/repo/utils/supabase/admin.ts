import { createClient } from '@supabase/supabase-js'

// The admin module of nextjs-subscription-payments' layout: imported by webhooks and
// server actions only.
export const supabaseAdmin = createClient(
  process.env.NEXT_PUBLIC_SUPABASE_URL!,
  process.env.SUPABASE_SERVICE_ROLE_KEY!,
)
