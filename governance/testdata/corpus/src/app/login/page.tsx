export default function Login() {
  const [password, setPassword] = useState('')
  return <input type="password" placeholder="Your password" value={password} onChange={(e) => setPassword(e.target.value)} />
}
