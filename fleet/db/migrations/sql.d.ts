/** Migrations are imported as text, so the compiled contentctl carries them. */
declare module "*.sql" {
  const text: string;
  export default text;
}
