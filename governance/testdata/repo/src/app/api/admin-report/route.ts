import { createClient } from '@supabase/supabase-js'

// "admin-report" is not an admin/ directory: this route is public.
export async function GET() {
  const supabase = createClient(
    process.env.NEXT_PUBLIC_SUPABASE_URL!,
    process.env.SUPABASE_SERVICE_ROLE_KEY!,
  )
  const { data } = await supabase.from('payments').select('*')
  return Response.json(data)
}
