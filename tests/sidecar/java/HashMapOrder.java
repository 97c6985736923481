import java.util.*;
import java.util.stream.*;
// Prints, for random keys and values: the keys in insertion order, a HashMap's iteration order, the order of
// its copy, the values as raw bits and DoubleStream.sum() / size as raw bits (tab-separated).
public class HashMapOrder {
  public static void main(String[] a) {
    Random r = new Random(42);
    StringBuilder out = new StringBuilder();
    for (int trial = 0; trial < 200; trial++) {
      int n = 1 + r.nextInt(40);
      List<String> keys = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        int len = 1 + r.nextInt(12);
        StringBuilder sb = new StringBuilder();
        for (int j = 0; j < len; j++) sb.append((char)('a' + r.nextInt(26)));
        if (r.nextInt(5) == 0) sb.append("é");
        if (r.nextInt(9) == 0) sb.append("\uD83D\uDE00");
        keys.add(sb.toString() + "_" + i);
      }
      Map<String, Double> m = new HashMap<>(n);
      double[] vals = new double[n];
      for (int i = 0; i < n; i++) { vals[i] = r.nextDouble() / (1 + r.nextInt(7)); m.put(keys.get(i), vals[i]); }
      Map<String, Double> copy = new HashMap<>(m);
      double sum = m.values().stream().mapToDouble(Double::doubleValue).sum() / m.size();
      out.append(String.join("\u0001", keys)).append("\t");
      out.append(String.join("\u0001", m.keySet())).append("\t");
      out.append(String.join("\u0001", copy.keySet())).append("\t");
      StringBuilder vs = new StringBuilder();
      for (int i = 0; i < n; i++) { if (i>0) vs.append(","); vs.append(Double.doubleToRawLongBits(vals[i])); }
      out.append(vs).append("\t").append(Double.doubleToRawLongBits(sum)).append("\n");
    }
    System.out.print(out);
  }
}
