"""placement: pool-aware scheduling of bundle groups across edge, fog and cloud node pools."""
